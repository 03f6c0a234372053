"""boto3 clients, and AWS failures as one-line AwsErrors.

boto3 reads the region, credentials, AWS_ENDPOINT_URL, AWS_MAX_ATTEMPTS and AWS_RETRY_MODE from
the environment itself; nothing here overrides them. boto3 is imported only when a client is made.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..config import Settings
from ..errors import AwsError, one_line

THROTTLED = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
BAD_CREDENTIALS = {
    "AuthFailure",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "ExpiredToken",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
}


def client(service: str) -> Any:
    """A boto3 client for `service` ("rds", "ec2"), configured from the environment as boto3 does.

    A malformed AWS_* value becomes an AwsError naming the variable (botocore would end in a traceback).
    """
    import boto3.session
    import botocore.session
    from botocore import exceptions as boto
    from botocore.config import Config

    core = botocore.session.get_session()
    with translated():
        try:
            # botocore converts it with int() only while building the client; ask first, to name it.
            core.get_config_variable("max_attempts")
        except ValueError:
            raise AwsError("AWS_MAX_ATTEMPTS (or max_attempts in the AWS config file) must be a whole number such as 3") from None
        try:
            session = boto3.session.Session(botocore_session=core)
            return session.client(service, config=Config(connect_timeout=10, read_timeout=60))
        except ValueError as e:
            prefix = "Invalid endpoint: "
            # botocore's own errors (a bad region, say) are ValueErrors too; translated() names those.
            if isinstance(e, boto.BotoCoreError) or not str(e).startswith(prefix):
                raise
            raise AwsError(
                f"AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_{service.upper()}) {str(e)[len(prefix) :]!r} is not a URL:"
                " give a full one such as http://localhost:4566"
            ) from None


def region(aws_client: Any) -> str:
    return aws_client.meta.region_name


def error_from_response(response: dict, operation: str) -> AwsError:
    """The AwsError for an error answer (a ClientError's or a waiter's last response)."""
    error = response.get("Error") or {}
    code = error.get("Code") or "Unknown"
    message = one_line(error.get("Message") or "no message")
    hint = ""
    if code in THROTTLED:
        hint = " (AWS throttled the request, even after retries; wait a minute and run it again)"
    elif code in BAD_CREDENTIALS:
        hint = " (check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
    return AwsError(f"AWS {operation} failed: {code}: {message}{hint}", code)


@contextmanager
def translated() -> Iterator[None]:
    """Turn what AWS or botocore can answer into an AwsError with one line; bugs pass through."""
    from botocore import exceptions as boto

    try:
        yield
    except boto.ClientError as e:
        raise error_from_response(e.response, e.operation_name) from None
    except (boto.NoCredentialsError, boto.PartialCredentialsError) as e:
        how = _workspace().how_to_set("AWS_ACCESS_KEY_ID", "...")
        raise AwsError(
            f"no AWS credentials ({type(e).__name__}: {one_line(e)}): {how}, and the same for AWS_SECRET_ACCESS_KEY (or set AWS_PROFILE)"
        ) from None
    except boto.ProfileNotFound as e:
        raise AwsError(f"{one_line(e)} (ProfileNotFound): fix AWS_PROFILE or ~/.aws/config") from None
    except (boto.CredentialRetrievalError, boto.TokenRetrievalError, boto.SSOError) as e:
        raise AwsError(f"AWS credentials could not be loaded ({type(e).__name__}): {one_line(e)}") from None
    except boto.InvalidRegionError as e:
        raise AwsError(
            f"AWS region {e.kwargs.get('region_name')!r} is not a region name (InvalidRegionError):"
            " export AWS_DEFAULT_REGION=us-east-1 (or fix AWS_REGION, or region in the AWS config file)"
        ) from None
    except (boto.InvalidMaxRetryAttemptsError, boto.InvalidRetryModeError) as e:
        raise AwsError(f"{one_line(e)} (fix AWS_MAX_ATTEMPTS / AWS_RETRY_MODE, or the AWS config file)") from None
    except boto.NoRegionError:
        raise AwsError(f"no AWS region (NoRegionError): {_workspace().how_to_set('AWS_DEFAULT_REGION', 'us-east-1')}") from None
    except (boto.ConnectionError, boto.HTTPClientError) as e:
        raise AwsError(f"could not reach AWS ({type(e).__name__}): {one_line(e)}") from None
    except boto.WaiterError:
        raise  # not a failure of its own: the waiting code reads its last answer
    except boto.BotoCoreError as e:
        # The rest of botocore's own family: a setting it cannot use (an AWS_CONFIG_FILE that is
        # not INI, an unknown AWS_DEFAULTS_MODE, a CA bundle that is not there, ...).
        raise AwsError(
            f"botocore could not use the AWS settings ({type(e).__name__}): {one_line(e)}"
            " (check the AWS_* variables and the AWS config file)"
        ) from None


def _workspace():
    return Settings.from_env().workspace
