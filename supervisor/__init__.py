"""mgr-supervisor: runs OpenStack-style managers in supervised worker processes."""
