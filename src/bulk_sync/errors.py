"""Exceptions of bulk_sync.

    BulkSyncError                      base of everything raised on purpose
    ├── UsageError                     the command, config or input cannot be used (exit 2)
    │   ├── ConfigError                a setting is missing or wrong
    │   ├── InputError                 a file cannot be read at all (names file/sheet/column)
    │   ├── ReportExistsError          --report names a file that already exists
    │   ├── LockedError                another run holds the lock
    │   └── InsecureURLError           plain http:// to a non-loopback host
    └── ApiError                       an outcome of a call to the API; carries status,
        │                              message and customer id, never the token
        ├── AuthError                  401: credentials rejected, fatal for the run (exit 3)
        ├── Forbidden                  403: refused for this customer (that customer's rows
        │                              fail); many in a row stop the run like a 401
        ├── CertificateError           the server's TLS certificate is not trusted: fatal too
        ├── CustomerNotFound           404: that customer's rows fail, the run goes on
        ├── DocumentRejected           422: the body was refused (empty key/value, ...)
        ├── ClientError                other 4xx: not retried
        └── RetriableError             worth another attempt
            ├── RateLimited            429, with retry_after seconds when given
            ├── ServerError            5xx, with retry_after when given
            └── TransportError         connect error, reset, timeout, malformed response

Sorted by what the pipeline must do (fatal, skippable, retriable): see
:func:`bulk_sync.client.classify` for the one place a response becomes an outcome.
"""

from __future__ import annotations


class BulkSyncError(Exception):
    """Base class of bulk_sync's own exceptions."""


class UsageError(BulkSyncError):
    """Nothing can be sent: the command, config or input is unusable (exit code 2)."""


class ConfigError(UsageError):
    pass


class InputError(UsageError):
    """A file cannot be used. The message names the file (and sheet, row, column)."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        sheet: str = "",
        row: int | None = None,
        column: str = "",
    ) -> None:
        self.source = source
        self.sheet = sheet
        self.row = row
        self.column = column
        where = [p for p in (source, f"sheet {sheet!r}" if sheet else "") if p]
        if row is not None:
            where.append(f"row {row}")
        if column:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
        self.reason = message


class ReportExistsError(UsageError):
    pass


class LockedError(UsageError):
    pass


class InsecureURLError(UsageError):
    pass


class ApiError(BulkSyncError):
    """An outcome of one API call other than success."""

    retriable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        customer_id: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.customer_id = customer_id
        self.code = code
        self.retry_after = retry_after
        super().__init__(self._text())

    def _text(self) -> str:
        parts = []
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.customer_id is not None:
            parts.append(f"customer {self.customer_id!r}")
        head = " ".join(parts)
        return f"{head}: {self.message}" if head else self.message


class AuthError(ApiError):
    """Credentials rejected (401). Fatal for a run."""


class Forbidden(ApiError):
    """403: the API refused this request. It may be about this customer (a business
    refusal such as "Not enough SMS credits") or about the key (it lacks a permission):
    the uploader fails that customer's rows, and stops the run like a 401 only when 403s
    keep coming for different customers."""


class CertificateError(ApiError):
    """TLS verification failed. Every request would fail the same way: fatal for a run."""


class CustomerNotFound(ApiError):
    pass


class DocumentRejected(ApiError):
    pass


class ClientError(ApiError):
    pass


class RetriableError(ApiError):
    retriable = True


class RateLimited(RetriableError):
    pass


class ServerError(RetriableError):
    pass


class TransportError(RetriableError):
    pass
