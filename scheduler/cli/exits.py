"""The command line's exit statuses: 0, 1 for a failure, 2 for a usage mistake (EX_USAGE),
78 (EX_CONFIG) for what a setting fixes."""

EX_OK, EX_FAILURE, EX_USAGE, EX_CONFIG = 0, 1, 2, 78
