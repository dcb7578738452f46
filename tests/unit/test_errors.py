"""AWS error codes and messages classified into errors that carry their retry policy."""

from __future__ import annotations

import pytest

from reconciler.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    CredentialsExpiredError,
    NoUpdatesError,
    PermanentError,
    ReconcileError,
    StackNotFoundError,
    ThrottledError,
    TransientError,
    classify,
)


@pytest.mark.parametrize(
    ("code", "message", "kind", "retryable"),
    [
        pytest.param("Throttling", "Rate exceeded", ThrottledError, True, id="throttling"),
        pytest.param("ThrottlingException", "slow down", ThrottledError, True, id="throttling-exception"),
        pytest.param("SomethingElse", "Rate exceeded", ThrottledError, True, id="rate-exceeded-message"),
        pytest.param("ExpiredToken", "The security token is expired", CredentialsExpiredError, True, id="expired"),
        pytest.param(
            "InvalidClientTokenId",
            "The security token included in the request is invalid",
            CredentialsExpiredError,
            True,
            id="invalid-token",
        ),
        pytest.param("AccessDenied", "not authorized", AccessDeniedError, False, id="access-denied"),
        pytest.param("AccessDeniedException", "not authorized", AccessDeniedError, False, id="access-denied-exc"),
        pytest.param("AccountSuspended", "suspended", AccessDeniedError, False, id="account-suspended"),
        pytest.param("ValidationError", "No updates are to be performed.", NoUpdatesError, False, id="no-updates"),
        pytest.param("ValidationError", "Stack with id s does not exist", StackNotFoundError, False, id="not-found"),
        pytest.param("AlreadyExistsException", "Stack [s] already exists", AlreadyExistsError, False, id="exists"),
        pytest.param(
            "ValidationError",
            "Stack:s is in UPDATE_IN_PROGRESS state and can not be updated.",
            TransientError,
            True,
            id="in-progress",
        ),
        pytest.param(
            "ValidationError",
            "Stack:arn:aws:cloudformation:us-east-1:1:stack/s/1 is in UPDATE_ROLLBACK_FAILED state and can not be "
            "updated.",
            TransientError,
            True,
            id="rollback-failed-can-not",
        ),
        pytest.param(
            "ValidationError",
            "Stack s is in ROLLBACK_COMPLETE state and cannot be updated.",
            TransientError,
            True,
            id="rollback-complete-cannot",
        ),
        pytest.param("ServiceUnavailable", "", TransientError, True, id="service-unavailable"),
        pytest.param("500", "internal", TransientError, True, id="http-5xx"),
        pytest.param("ValidationError", "Parameter Seed failed to satisfy constraint", PermanentError, False, id="bad"),
        pytest.param("Teapot", "unknown code", PermanentError, False, id="unknown-code"),
    ],
)
def test_classify(code: str, message: str, kind: type[ReconcileError], retryable: bool) -> None:
    error = classify(code, message)

    assert type(error) is kind
    assert error.retryable is retryable
    assert error.code == code
    assert message in str(error)


def test_the_message_keeps_code_and_text_for_the_status() -> None:
    assert str(classify("AccessDenied", "User x is not authorized")) == "AccessDenied: User x is not authorized"
    assert str(classify("ServiceUnavailable", "")) == "ServiceUnavailable"


def test_error_codes_default_to_the_class_code() -> None:
    assert ThrottledError("slow").code == "Throttling"
    assert PermanentError("x").code == "Permanent"
    assert AccessDeniedError("x", code="UnauthorizedOperation").code == "UnauthorizedOperation"
