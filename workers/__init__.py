"""Managers that ship with mgr-supervisor."""
