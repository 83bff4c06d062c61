"""The asyncio shell: AsyncPool and AsyncLease."""
