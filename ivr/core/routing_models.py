"""Routing data as validated models (input side). Pure: parsing files is the loader's job."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

QUEUE_NAME = r"^[a-z][a-z0-9-]{0,39}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HotlineIn(_Strict):
    name: str = Field(min_length=1, max_length=40)  # spoken in the greeting
    dids: list[str] = Field(min_length=1)  # the hotline numbers
    default_language: str = Field(default="zh", pattern=r"^(zh|en)$")
    default_queue: str = Field(pattern=QUEUE_NAME)  # where the greeting hands the call

    @field_validator("dids")
    @classmethod
    def _digits_only(cls, dids: list[str]) -> list[str]:
        for did in dids:
            if not did.isdigit() or not 3 <= len(did) <= 20:
                raise ValueError(f"DID {did!r} must be 3 to 20 digits")
        if len(set(dids)) != len(dids):
            raise ValueError("a DID is listed twice")
        return dids


class RoutingFileIn(_Strict):
    hotline: HotlineIn | None = None


class Routing(_Strict):
    """All routing files merged: what the call flow is configured from."""

    hotline: HotlineIn
