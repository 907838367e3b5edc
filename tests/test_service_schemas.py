"""The API's typed words are the workflow's: a state, an action, a claim type or an evidence kind
added in ``cases`` or ``fusion`` fails here until ``service/schemas.py`` (and so the OpenAPI
document) says it too."""

from __future__ import annotations

from typing import get_args

from refundlens.cases import EVIDENCE_KINDS
from refundlens.cases.routing import CLAIM_TYPES
from refundlens.cases.states import ClaimState
from refundlens.fusion import ACTIONS
from refundlens.service import fields, schemas


def test_the_api_types_actions_claim_types_and_evidence_kinds_as_the_workflow_does() -> None:
    assert get_args(schemas.Action) == ACTIONS
    assert get_args(schemas.ClaimType) == CLAIM_TYPES
    assert get_args(schemas.EvidenceKind) == EVIDENCE_KINDS == fields.EVIDENCE_KINDS


def test_a_claim_answer_states_the_lifecycle_s_own_states() -> None:
    state = schemas.ClaimOut.model_fields["state"].annotation
    assert state is ClaimState
    assert schemas.BuyerClaimOut.model_fields["state"].annotation is ClaimState


def test_a_response_model_refuses_a_key_it_does_not_list() -> None:
    """A view that grows a key fails its tests, instead of response_model dropping the key."""
    for model in (schemas.ClaimOut, schemas.BuyerClaimOut, schemas.ClaimItemOut):
        assert model.model_config.get("extra") == "forbid", model
