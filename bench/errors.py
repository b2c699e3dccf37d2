"""The one exception type the CLI turns into a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: a flag, a name, a file. Printed as one line, exit code 2."""
