"""The threaded shell: Pool and its Lease. Waits and does I/O; decides nothing itself."""
