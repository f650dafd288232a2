"""The one base exception of stackmeter and its direct families.

Hierarchy::

    StackmeterError
    ├── ConfigError        bad configuration, raised at start
    ├── CodecError         a message that cannot be encoded or decoded
    │   └── UnknownSchemaError
    └── StorageError       ClickHouse refused or could not be reached

``retriable`` says whether trying the same call again may succeed.
"""


class StackmeterError(Exception):
    """Base of every error stackmeter raises on purpose."""

    retriable: bool = False


class ConfigError(StackmeterError):
    """Configuration that cannot be used; names the file and field."""


class CodecError(StackmeterError):
    """A message that is not valid single-object Avro for a known schema."""


class UnknownSchemaError(CodecError):
    """The writer schema's fingerprint is not in the registry."""


class StorageError(StackmeterError):
    """ClickHouse failed; retriable when the server may come back."""

    retriable = True
