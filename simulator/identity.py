"""Keystone's side of the simulator and the documents every client reads before
its first real call: version discovery per service, the token with its service
catalog, and error bodies shaped like each service's own."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stackmeter.simulator.clock import iso_z
from stackmeter.simulator.scenario import Credentials, Project, stable_id

#: Lifetime of an issued token in real seconds; the simulated clock may run at
#: any speed, so tokens follow the real one as keystoneauth checks them.
TOKEN_LIFETIME_S = 24 * 3600.0


@dataclass(frozen=True)
class ServiceEndpoint:
    """One catalog entry: service type, name and path below the base URL."""

    service_type: str
    name: str
    path: str


#: The services in the catalog, at DevStack-like paths on one port.
ENDPOINTS = (
    ServiceEndpoint("identity", "keystone", "/identity"),
    ServiceEndpoint("compute", "nova", "/compute/v2.1"),
    ServiceEndpoint("block-storage", "cinder", "/volume/v3"),
    ServiceEndpoint("image", "glance", "/image"),
    ServiceEndpoint("network", "neutron", "/networking"),
    ServiceEndpoint("load-balancer", "octavia", "/load-balancer"),
)

#: Microversion ranges served, as (min, max).
COMPUTE_VERSIONS = ((2, 1), (2, 96))
VOLUME_VERSIONS = ((3, 0), (3, 71))


class TokenStore:
    """Tokens issued to the admin user, checked on every API request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def issue(self) -> tuple[str, float]:
        """A new token and its real expiry time (epoch seconds)."""
        token = secrets.token_hex(16)
        expires = time.time() + TOKEN_LIFETIME_S
        with self._lock:
            self._expiry[token] = expires
        return token, expires

    def valid(self, token: str | None) -> bool:
        """Whether ``token`` was issued here and has not expired."""
        if not token:
            return False
        with self._lock:
            expires = self._expiry.get(token)
        return expires is not None and expires > time.time()


def check_password_auth(
    body: object, credentials: Credentials, admin_project: Project
) -> str | None:
    """Why a ``POST /v3/auth/tokens`` body is refused, or None when it names
    the admin user with the right password, scoped to the admin project."""
    try:
        identity = body["auth"]["identity"]  # type: ignore[index]
        user = identity["password"]["user"]
        project = body["auth"]["scope"]["project"]  # type: ignore[index]
    except (KeyError, TypeError):
        return "expected password authentication scoped to a project"
    if "password" not in identity.get("methods", []):
        return "only the password method is supported"
    if user.get("name") != credentials.username:
        return "unknown user"
    if user.get("password") != credentials.password:
        return "wrong password"
    if not _domain_matches(user.get("domain"), credentials.user_domain_name):
        return "unknown user domain"
    if project.get("id") == admin_project.id:
        return None
    if project.get("name") != admin_project.name:
        return "the admin user has a role only on the admin project"
    if not _domain_matches(project.get("domain"), credentials.project_domain_name):
        return "unknown project domain"
    return None


def token_body(
    base_url: str,
    region: str,
    credentials: Credentials,
    project: Project,
    expires_ts: float,
) -> dict[str, Any]:
    """The token document with a catalog of every simulated service."""
    domain = {"id": "default", "name": credentials.user_domain_name}
    catalog = [
        {
            "type": endpoint.service_type,
            "name": endpoint.name,
            "id": stable_id("services", endpoint.name),
            "endpoints": [
                {
                    "id": stable_id("endpoints", f"{endpoint.name}/{interface}"),
                    "interface": interface,
                    "region": region,
                    "region_id": region,
                    "url": base_url + endpoint.path,
                }
                for interface in ("public", "internal", "admin")
            ],
        }
        for endpoint in ENDPOINTS
    ]
    return {
        "token": {
            "methods": ["password"],
            "user": {
                "id": stable_id("users", credentials.username),
                "name": credentials.username,
                "domain": domain,
                "password_expires_at": None,
            },
            "project": {
                "id": project.id,
                "name": project.name,
                "domain": {"id": project.domain_id, "name": "Default"},
            },
            "roles": [
                {"id": stable_id("roles", "admin"), "name": "admin"},
                {"id": stable_id("roles", "reader"), "name": "reader"},
            ],
            "is_domain": False,
            "catalog": catalog,
            "audit_ids": [secrets.token_urlsafe(16)],
            "issued_at": iso_z(time.time()),
            "expires_at": iso_z(expires_ts),
        }
    }


def version_documents(base_url: str) -> dict[str, tuple[int, dict[str, Any]]]:
    """Discovery documents by request path: (HTTP status, body).

    Roots list every version (Keystone and Glance answer 300 Multiple Choices
    there, as the real services do); versioned roots describe one version with
    the microversion range that clients negotiate against.
    """
    identity_v3 = _version(
        "v3.14", "stable", f"{base_url}/identity/v3/", updated="2020-04-07"
    )
    identity_v3["media-types"] = [
        {
            "base": "application/json",
            "type": "application/vnd.openstack.identity-v3+json",
        }
    ]
    compute = [
        _version("v2.0", "SUPPORTED", f"{base_url}/compute/v2/", micro=("", "")),
        _version(
            "v2.1",
            "CURRENT",
            f"{base_url}/compute/v2.1/",
            micro=_micro_text(COMPUTE_VERSIONS),
        ),
    ]
    volume = [
        _version(
            "v3.0",
            "CURRENT",
            f"{base_url}/volume/v3/",
            micro=_micro_text(VOLUME_VERSIONS),
        )
    ]
    image = [
        _version(f"v2.{minor}", status, f"{base_url}/image/v2/")
        for minor, status in ((17, "CURRENT"), (16, "SUPPORTED"), (0, "SUPPORTED"))
    ]
    network = [_version("v2.0", "CURRENT", f"{base_url}/networking/v2.0/")]
    octavia = [
        _version(f"v2.{minor}", "SUPPORTED", f"{base_url}/load-balancer/v2/")
        for minor in range(27)
    ]
    octavia[-1]["status"] = "CURRENT"
    return {
        "/identity": (300, {"versions": {"values": [identity_v3]}}),
        "/identity/v3": (200, {"version": identity_v3}),
        "/compute": (200, {"versions": compute}),
        "/compute/v2.1": (200, {"version": compute[1]}),
        "/volume": (300, {"versions": volume}),
        "/volume/v3": (200, {"versions": volume}),
        "/image": (300, {"versions": image}),
        "/image/versions": (200, {"versions": image}),
        "/networking": (200, {"versions": network}),
        "/networking/v2.0": (200, {"resources": []}),
        "/load-balancer": (200, {"versions": octavia}),
        "/load-balancer/v2": (200, {"versions": octavia}),
        "/load-balancer/v2.0": (200, {"versions": octavia}),
    }


def error_body(service: str, status: int, message: str) -> dict[str, Any]:
    """An error document in the shape ``service`` uses."""
    if service == "network":
        return {"NeutronError": {"type": "HTTPError", "message": message, "detail": ""}}
    if service == "load-balancer":
        return {"faultcode": "Server", "faultstring": message, "debuginfo": None}
    if service in ("compute", "block-storage"):
        key = "computeFault" if status >= 500 else "badRequest"
        return {key: {"code": status, "message": message}}
    return {"error": {"code": status, "message": message, "title": "Error"}}


def _domain_matches(domain: object, name: str) -> bool:
    if not isinstance(domain, Mapping):
        return False
    return domain.get("name") == name or domain.get("id") in ("default", name)


def _version(
    version_id: str,
    status: str,
    href: str,
    micro: tuple[str, str] | None = None,
    updated: str = "2024-01-01",
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": version_id,
        "status": status,
        "updated": f"{updated}T00:00:00Z",
        "links": [{"rel": "self", "href": href}],
    }
    if micro is not None:
        document["min_version"], document["version"] = micro
    return document


def _micro_text(bounds: tuple[tuple[int, int], tuple[int, int]]) -> tuple[str, str]:
    (low_major, low_minor), (high_major, high_minor) = bounds
    return f"{low_major}.{low_minor}", f"{high_major}.{high_minor}"
