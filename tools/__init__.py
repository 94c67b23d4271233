"""Tools for people, outside the library and its code version: the `mlops` command (cli),
the local stack, sample data, predict."""
