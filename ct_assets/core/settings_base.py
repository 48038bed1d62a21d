"""The base every settings section shares: strict keys, no booleans as numbers, paths
under CT_HOME. Split from settings.py so each section's module stays small."""

from __future__ import annotations

from typing import Annotated

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

from ct_assets.core.home import path_problem


class Strict(BaseModel):
    # extra="forbid": a typo in ct.yaml is an error, not a silently ignored key.
    # allow_inf_nan=False: `.inf` or `.nan` as a rate, share or threshold is always a mistake.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_are_not_numbers(cls, value: object, info: pydantic.ValidationInfo) -> object:
        # Pydantic's lax mode reads `window_days: true` as 1 and `mask_emails: 1` as true;
        # either is a slip in ct.yaml, not a value. Strings stay lax on purpose: PyYAML reads
        # `5e-3` (no dot) as the string "5e-3", and refusing it would punish valid YAML 1.2.
        wants_bool = cls.model_fields[info.field_name].annotation is bool
        if isinstance(value, bool) and not wants_bool:
            raise ValueError("a boolean is not a number or text here; write the value itself")
        if wants_bool and not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value


def path_setting(value: str) -> str:
    # The error's location already names the key (source.path, golden.path, ...).
    if (problem := path_problem(value)) is not None:
        raise ValueError(problem)
    return value


# A file or folder: relative is under CT_HOME and may not leave it (core/home.py).
SettingsPath = Annotated[str, AfterValidator(path_setting)]


