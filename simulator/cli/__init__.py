"""The command line: the parser, the commands, and the one place that turns a field name into a flag."""
