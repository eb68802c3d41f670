"""The `wildpose` command line; sits on top of every room and is imported by none."""
