"""Finding the clouds.yaml the sampler uses and checking, before anything starts,
that every configured platform names a cloud (and region) that it defines.

openstacksdk reads the first clouds.yaml it finds on its search path; when the
sampler configuration names a file (``sampler.clouds_yaml``), only that file is
read and the ``OS_*`` environment variables are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import openstack.config
import openstack.config.loader
import openstack.exceptions
import yaml
from openstack.config.cloud_region import CloudRegion

from stackmeter.config import PlatformConfig, SamplerConfig
from stackmeter.errors import ConfigError


def clouds_yaml_candidates(sampler: SamplerConfig) -> list[str]:
    """The files openstacksdk will try, in order; it uses the first that exists."""
    if sampler.clouds_yaml:
        return [sampler.clouds_yaml]
    found = list(openstack.config.loader.CONFIG_FILES)
    override = os.environ.get("OS_CLIENT_CONFIG_FILE")
    if override:
        found.insert(0, override)
    return found


def openstack_config(sampler: SamplerConfig) -> openstack.config.OpenStackConfig:
    """openstacksdk's configuration loader, reading the sampler's clouds.yaml."""
    if sampler.clouds_yaml:
        return openstack.config.OpenStackConfig(
            config_files=[sampler.clouds_yaml], load_envvars=False
        )
    return openstack.config.OpenStackConfig()


def cloud_region(
    sampler: SamplerConfig, platform: PlatformConfig, **overrides: Any
) -> CloudRegion:
    """openstacksdk's settings for one platform, with ``overrides`` applied."""
    region: CloudRegion = openstack_config(sampler).get_one(
        cloud=platform.cloud, region_name=platform.region or "", **overrides
    )
    return region


def check_platforms(
    sampler: SamplerConfig, platforms: Sequence[PlatformConfig], source: str
) -> None:
    """Raise one ConfigError with a line per platform whose cloud or region is
    not in clouds.yaml; each line names the file and the field."""
    candidates = clouds_yaml_candidates(sampler)
    path = next((p for p in candidates if Path(p).is_file()), None)
    if path is None:
        raise ConfigError(
            f"{source}: sampler.clouds_yaml: no clouds.yaml found; looked for "
            f"{', '.join(candidates)}"
        )
    clouds = _read_clouds(path)
    problems = []
    for platform in platforms:
        problem = _platform_problem(clouds, platform)
        if problem is not None:
            problems.append(f"{path}: {problem}")
    if problems:
        raise ConfigError("\n".join(problems))
    _check_loadable(sampler, platforms, path)


def _read_clouds(path: str) -> Mapping[str, Any]:
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    clouds = loaded.get("clouds") if isinstance(loaded, dict) else None
    if not isinstance(clouds, dict):
        raise ConfigError(f"{path}: clouds: expected a mapping of cloud names")
    return clouds


def _platform_problem(
    clouds: Mapping[str, Any], platform: PlatformConfig
) -> str | None:
    known = ", ".join(sorted(clouds)) or "none"
    cloud = clouds.get(platform.cloud)
    if not isinstance(cloud, dict):
        return (
            f"clouds.{platform.cloud}: no such cloud (named by platform "
            f"{platform.platform_id!r}); known: {known}"
        )
    if platform.region is None:
        return None
    regions = _region_names(cloud)
    if regions and platform.region not in regions:
        return (
            f"clouds.{platform.cloud}.regions: no region {platform.region!r} "
            f"(named by platform {platform.platform_id!r}); known: "
            f"{', '.join(regions)}"
        )
    return None


def _region_names(cloud: Mapping[str, Any]) -> list[str]:
    regions = cloud.get("regions")
    if isinstance(regions, list):
        return [
            str(region.get("name")) if isinstance(region, dict) else str(region)
            for region in regions
        ]
    region_name = cloud.get("region_name")
    return [str(region_name)] if region_name else []


def _check_loadable(
    sampler: SamplerConfig, platforms: Sequence[PlatformConfig], path: str
) -> None:
    """Let openstacksdk read each cloud too, for what it alone checks (auth
    type, profiles); its message is kept, prefixed with the file and cloud."""
    problems = []
    for platform in platforms:
        try:
            cloud_region(sampler, platform)
        except openstack.exceptions.ConfigException as exc:
            problems.append(f"{path}: clouds.{platform.cloud}: {exc}")
    if problems:
        raise ConfigError("\n".join(problems))
