"""Records the sink stores, built the way the pipeline's stages publish them.

A ``Dataset`` is a small month of one platform: projects, hourly usage with a
correction, charges (one product dropped by the correction, one record
unrated), and sampling runs with their snapshots, plus a few messages the sink
must refuse. It knows the figures a correct sink must end up with.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from stackmeter.codec import default_registry

PLATFORM = "openstack.eu-west"
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)
MONTH = MONTH_START.date()
QUANTUM = Decimal("0.000000001")

Record = dict[str, Any]


def digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def project_record(index: int) -> Record:
    return {
        "platform_id": PLATFORM,
        "project_id": f"project-{index}",
        "name": f"team-{index}",
        "domain_id": "default",
        "tags": [f"cost-center-{index % 2}"],
        "enabled": True,
        "sampled_at": MONTH_START + timedelta(minutes=index),
    }


def usage_record(
    resource: int, hour: int, *, revision: int = 1, project: int | None = None
) -> Record:
    hour_start = MONTH_START + timedelta(hours=hour)
    resource_id = f"server-{resource:04d}"
    return {
        "usage_id": digest(
            PLATFORM, "nova.server", resource_id, hour_start.isoformat()
        ),
        "revision": revision,
        "platform_id": PLATFORM,
        "resource_type": "nova.server",
        "project_id": f"project-{resource % 3 if project is None else project}",
        "resource_id": resource_id,
        "resource_name": f"vm-{resource}",
        "hour_start": hour_start,
        "samples_observed": 12 if revision == 1 else 11,
        "samples_expected": 12,
        "estimated": hour % 5 == 4,
        "traits": {
            "vcpu": 2 + resource % 3,
            "ramMb": 4096,
            "flavor": "m1.large" if revision == 1 else "m1.small",
            "state": "ACTIVE",
            "disk": None,
        },
        "last_sampled_at": hour_start + timedelta(minutes=55, milliseconds=123),
    }


def charge(usage: Record, product: str, quantity: str, price: str) -> Record:
    amount = (Decimal(quantity) * Decimal(price)).quantize(QUANTUM)
    return {
        "charge_id": digest(usage["usage_id"], product),
        "usage_id": usage["usage_id"],
        "usage_revision": usage["revision"],
        "platform_id": usage["platform_id"],
        "resource_type": usage["resource_type"],
        "project_id": usage["project_id"],
        "resource_id": usage["resource_id"],
        "resource_name": usage["resource_name"],
        "hour_start": usage["hour_start"],
        "estimated": usage["estimated"],
        "rated": True,
        "unrated_reason": None,
        "product_id": product,
        "product_name": f"Product {product}",
        "quantity": Decimal(quantity).quantize(QUANTUM),
        "unit": "h",
        "unit_price": Decimal(price).quantize(QUANTUM),
        "amount": amount,
        "currency": "EUR",
        "catalog_version": "2026.11",
    }


def unrated(usage: Record, reason: str) -> Record:
    return {
        **charge(usage, "", "0", "0"),
        "rated": False,
        "unrated_reason": reason,
        "product_id": None,
        "product_name": None,
        "unit": "",
        "currency": None,
    }


def rate(usage: Record) -> list[Record]:
    """Charges as a catalog would price the record: vCPU, plus a flavor surcharge."""
    vcpu = str(usage["traits"]["vcpu"])
    charges = [charge(usage, "compute.vcpu", vcpu, "0.011")]
    if usage["traits"]["flavor"] == "m1.large":
        charges.append(charge(usage, "compute.large", "1", "0.003333333"))
    return charges


def run_marker(run_id: str, sampled_at: datetime, count: int) -> Record:
    return {
        "run_id": run_id,
        "platform_id": PLATFORM,
        "resource_type": "nova.server",
        "sampled_at": sampled_at,
        "resource_count": count,
    }


def server_snapshot(resource: int, run_id: str, sampled_at: datetime) -> Record:
    return {
        "envelope": {
            "platform_id": PLATFORM,
            "project_id": f"project-{resource % 3}",
            "resource_id": f"server-{resource:04d}",
            "resource_name": f"vm-{resource}",
            "run_id": run_id,
            "sampled_at": sampled_at,
        },
        "traits": {
            "disk": 20,
            "diskEphemeral": 0,
            "diskRoot": 20,
            "flavor": "m1.large",
            "ramMb": 4096,
            "state": "ACTIVE",
            "vcpu": 2,
        },
    }


@dataclass(frozen=True, slots=True)
class Message:
    """One Kafka message to produce: topic kind, key, value, optional partition."""

    kind: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None


@dataclass
class Dataset:
    """Messages to produce and what the tables must hold afterwards."""

    resources: int = 12
    hours: int = 6
    runs_per_hour: int = 4
    partitions: int = 3
    projects: list[Record] = field(default_factory=list)
    usage: list[Record] = field(default_factory=list)
    rated: list[Record] = field(default_factory=list)
    markers: list[Record] = field(default_factory=list)

    @classmethod
    def build(cls, resources: int = 12, hours: int = 6) -> Dataset:
        data = cls(resources=resources, hours=hours)
        data.projects = [project_record(index) for index in range(3)]
        for hour in range(hours):
            for resource in range(resources):
                record = usage_record(resource, hour)
                data.usage.append(record)
                if resource % 7 == 6:
                    data.rated.append(unrated(record, "no product prices nova.server"))
                else:
                    data.rated.extend(rate(record))
        # A late snapshot corrects one hour of resource 1: the flavor changed,
        # so the surcharge of revision 1 no longer applies.
        correction = usage_record(1, 2, revision=2)
        data.usage.append(correction)
        data.rated.extend(rate(correction))
        for hour in range(hours):
            if hour == 3:
                continue  # no run completed in this hour
            for run in range(data.runs_per_hour - (hour == 1)):
                sampled_at = MONTH_START + timedelta(hours=hour, minutes=run * 15)
                run_id = str(uuid.UUID(int=hour * 100 + run))
                data.markers.append(run_marker(run_id, sampled_at, resources))
        return data

    def messages(self) -> list[Message]:
        registry = default_registry()
        out = [
            Message(
                "projects",
                f"{p['platform_id']}/{p['project_id']}".encode(),
                registry.encode("stackmeter.Project", p),
            )
            for p in self.projects
        ]
        out.extend(
            Message(
                "usage",
                u["usage_id"].encode(),
                registry.encode("stackmeter.Usage", u),
            )
            for u in self.usage
        )
        out.extend(
            Message(
                "rated",
                r["charge_id"].encode(),
                registry.encode("stackmeter.RatedUsage", r),
            )
            for r in self.rated
        )
        for marker in self.markers:
            for resource in range(min(self.resources, 4)):
                snapshot = server_snapshot(
                    resource, marker["run_id"], marker["sampled_at"]
                )
                out.append(
                    Message(
                        "snapshots",
                        f"server-{resource:04d}".encode(),
                        registry.encode("stackmeter.snapshot.Server", snapshot),
                    )
                )
            value = registry.encode("stackmeter.RunMarker", marker)
            out.extend(
                Message("snapshots", marker["run_id"].encode(), value, partition)
                for partition in range(self.partitions)
            )
        return out

    @staticmethod
    def bad_messages() -> list[Message]:
        """Messages the sink must send to the dead-letter topic, not store."""
        registry = default_registry()
        project = registry.encode("stackmeter.Project", project_record(9))
        unknown = b"\xc3\x01" + b"\x00" * 8 + b"body"
        far_future = {
            **usage_record(0, 0),
            "hour_start": datetime(2200, 1, 1, tzinfo=UTC),
        }
        return [
            Message("usage", b"junk", b"this is not Avro"),
            Message("usage", b"unknown", unknown),
            Message("rated", b"misplaced", project),
            Message(
                "usage", b"future", registry.encode("stackmeter.Usage", far_future)
            ),
        ]

    # -- what the tables must hold ------------------------------------------------

    @property
    def snapshot_count(self) -> int:
        return len(self.markers) * min(self.resources, 4)

    def current_usage(self) -> dict[str, Record]:
        latest: dict[str, Record] = {}
        for record in self.usage:
            seen = latest.get(record["usage_id"])
            if seen is None or record["revision"] >= seen["revision"]:
                latest[record["usage_id"]] = record
        return latest

    def current_charges(self) -> dict[str, Record]:
        """Newest row per charge, of each usage's newest revision only."""
        newest: dict[str, Record] = {}
        for record in self.rated:
            newest[record["charge_id"]] = record
        revision = {u: r["revision"] for u, r in self.current_usage().items()}
        return {
            charge_id: record
            for charge_id, record in newest.items()
            if record["usage_revision"] == revision[record["usage_id"]]
        }

    def cost_by_project_and_product(self) -> dict[tuple[str, str], Decimal]:
        sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for record in self.current_charges().values():
            if record["rated"]:
                sums[(record["project_id"], record["product_id"])] += record["amount"]
        return dict(sums)

    def unrated_count(self) -> int:
        return sum(not r["rated"] for r in self.current_charges().values())

    def completed_runs_by_hour(self) -> dict[datetime, int]:
        counts: dict[datetime, int] = defaultdict(int)
        for marker in self.markers:
            hour = marker["sampled_at"].replace(minute=0, second=0, microsecond=0)
            counts[hour] += 1
        return dict(counts)
