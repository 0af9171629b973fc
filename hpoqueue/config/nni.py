"""NNI's files as NNI reads them: field names in any spelling NNI accepts, one line for a platform
hpoqueue does not run, and NNI tuners hpoqueue lacks named as such with the nearest one it has."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hpoqueue.errors import ConfigError

#: the platforms hpoqueue runs trials on; NNI's others (kubeflow, openpai, aml, ...) are refused by name
PLATFORMS = ("local", "remote")
#: NNI tuners hpoqueue does not have -> the nearest one it has, and why
UNSUPPORTED_TUNERS: dict[str, tuple[str, str]] = {
    "smac": ("SMAC", "TPE, also a sequential model-based search"),
    "metis": ("Metis", "GP, also a Gaussian-process search"),
    "dngo": ("DNGO", "GP, a Bayesian search with a Gaussian process in place of DNGO's network"),
    "tpe_legacy": ("TPE_legacy", "TPE with classArgs {implementation: hyperopt}: hyperopt's TPE, as TPE_legacy was"),
    "networkmorphism": ("NetworkMorphism", "Evolution (hpoqueue searches hyperparameters, not network "
                                           "architectures)"),
    "ppotuner": ("PPOTuner", "Evolution (hpoqueue searches hyperparameters, not network architectures)"),
    "ppo": ("PPO", "Evolution (hpoqueue searches hyperparameters, not network architectures)"),
    "regularizedevolution": ("RegularizedEvolution", "Evolution"),
    "regularizedevolutiontuner": ("RegularizedEvolutionTuner", "Evolution"),
}
#: v1 sections that belong to a platform other than local and remote
_V1_PLATFORM_SECTIONS = {f"{p}Config": p for p in (
    "pai", "paiYarn", "kubeflow", "frameworkcontroller", "aml", "dlts", "hybrid", "adl", "dlc", "openpai")}


def canonical(key: str) -> str:
    """NNI's rule for matching a field name: case and underscores do not count."""
    return key.lower().replace("_", "")


def refuse_other_platform(raw: Mapping[str, Any], source: str | None) -> None:
    """One line naming the platform when the file is for one hpoqueue does not run, before any other check."""
    found: tuple[str, str] | None = None
    service = next((v for k, v in raw.items() if isinstance(k, str) and canonical(k) == "trainingservice"), None)
    if isinstance(service, list):
        found = ("hybrid", "trainingService")
    elif isinstance(service, dict):
        platform = next((v for k, v in service.items() if isinstance(k, str) and canonical(k) == "platform"), None)
        if isinstance(platform, str):
            found = (platform, "trainingService.platform")
    if isinstance(raw.get("trainingServicePlatform"), str):
        found = (raw["trainingServicePlatform"], "trainingServicePlatform")
    if found is None or found[0] in PLATFORMS:
        section = next((k for k in raw if k in _V1_PLATFORM_SECTIONS), None)
        if section is None:
            return
        found = (_V1_PLATFORM_SECTIONS[section], section)
    name, where = found
    raise ConfigError(f"platform {name!r} is not supported", source=source, field=where,
                      hint="hpoqueue runs trials on this box (platform: local) or on your own boxes over ssh "
                           "(platform: remote); NNI itself runs the others")


def canonical_fields(raw: dict[str, Any], allowed: tuple[str, ...], where: str, source: str | None) -> dict:
    """`raw` with each key NNI would match to an `allowed` field (``search_space``, ``SearchSpace``) renamed
    to it; other keys are kept as they are for the unknown-field check. Two spellings of one field are
    refused."""
    names = {canonical(a): a for a in allowed}
    out: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in raw.items():
        name = names.get(canonical(key), key) if isinstance(key, str) else key
        if name in out:
            field = f"{where}.{key}" if where else str(key)
            raise ConfigError(f"'{spelled[name]}' and '{key}' are the same field", source=source, field=field,
                              hint="keep one of them")
        out[name] = value
        spelled[name] = key
    return out


def refuse_unsupported_tuner(name: str, where: str, source: str | None) -> None:
    """An NNI tuner hpoqueue does not have is named as such, with the nearest one it has."""
    found = UNSUPPORTED_TUNERS.get(name.lower())
    if found is not None:
        raise ConfigError(f"NNI's tuner {found[0]} is not supported by hpoqueue", source=source,
                          field=f"{where}.name", hint=f"the nearest here is {found[1]}; see docs/tuners.md")


def canonical_config(raw: dict[str, Any], fields: Mapping[str, tuple[str, ...]], source: str | None) -> dict:
    """canonical_fields over a v2 config: `fields` maps a section ('' for the top, 'tuner',
    'trainingService', 'trainingService.machineList' for each of its items) to its field names."""
    out = canonical_fields(raw, fields[""], "", source)
    for section, allowed in fields.items():
        head, _, tail = section.partition(".")
        if not head or not isinstance(out.get(head), dict):
            continue
        if not tail:
            out[head] = canonical_fields(out[head], allowed, head, source)
        elif isinstance(out[head].get(tail), list):
            out[head] = {**out[head], tail: [
                canonical_fields(item, allowed, f"{section}[{i}]", source) if isinstance(item, dict) else item
                for i, item in enumerate(out[head][tail])]}
    return out
