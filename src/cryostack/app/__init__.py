"""The commands behind the tasks: one module per group, thin (parse, call the package, print)."""
