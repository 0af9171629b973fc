"""The worker side of one trial attempt: claim, GPU slots and leases, code cache, the supervised runner, relays."""
