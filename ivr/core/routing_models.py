"""Routing data as validated models (input side). Pure: parsing files is the loader's job."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

QUEUE_NAME = r"^[a-z][a-z0-9-]{0,39}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _did(did: str) -> str:
    # Per item, so a validation error's location (and the file:line) names the bad entry.
    if not (did.isascii() and did.isdigit()) or not 3 <= len(did) <= 20:
        raise ValueError(f"DID {did!r} must be 3 to 20 digits")
    return did


class HotlineIn(_Strict):
    name: str = Field(min_length=1, max_length=40)  # spoken in the greeting
    dids: list[Annotated[str, AfterValidator(_did)]] = Field(min_length=1)  # hotline numbers
    default_language: str = Field(default="zh", pattern=r"^(zh|en)$")
    default_queue: str = Field(pattern=QUEUE_NAME)  # where the greeting hands the call

    @field_validator("dids")
    @classmethod
    def _no_duplicates(cls, dids: list[str]) -> list[str]:
        if len(set(dids)) != len(dids):
            raise ValueError("a DID is listed twice")
        return dids


class RoutingFileIn(_Strict):
    hotline: HotlineIn | None = None


class Routing(_Strict):
    """All routing files merged: what the call flow is configured from."""

    hotline: HotlineIn
