"""One base error type with clear subclasses.

Every error carries one line that names what was wrong and where (file, key, column,
shapes). The CLI prints ``str(error)`` and exits non-zero; nothing is lost.
"""


class DeriveError(Exception):
    """Base class of every error derivekit raises on purpose."""

    def __init__(self, message, *, where=None):
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)

    def at(self, where):
        """Return a copy of this error located at ``where`` (prefixes an outer location)."""
        inner = f"{where}: {self.where}" if self.where else where
        return type(self)(self.message, where=inner)


class InputError(DeriveError):
    """The input is malformed: a parse error, an unknown name, a bad key or value."""


class UnsupportedError(DeriveError):
    """Well-formed, but not supported (yet): an unknown function, layer or op."""


class NotDifferentiableError(DeriveError):
    """The gradient asked for does not exist here (and no convention applies)."""


class ShapeError(InputError):
    """Shapes that do not fit together; the message names both shapes and the node."""
