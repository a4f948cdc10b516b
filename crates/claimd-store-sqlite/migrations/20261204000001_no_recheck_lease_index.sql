-- Nothing looks leases up by owner any more: a lease returns the rows it took, and a result is
-- recorded by the domain's key. The index only cost every lease and every result two writes.
DROP INDEX domains_recheck_lease;
