"""Drivers of the resources manager: one interface, several real implementations.

`base.ResourcesDriver` is the interface; `psutil_driver.PsutilDriver` (the default) and
`proc_driver.ProcDriver` (reads `/proc` and calls `os.statvfs` itself) implement it. The
manager picks one by the dotted path in its `driver` option.
"""
