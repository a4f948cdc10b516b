-- claimd schema, version 6 (PostgreSQL): the webhook delivery queue is updated several times per
-- delivery (leased, handed back, recorded), so its dead rows pile up fast; autovacuum looks at it
-- after 1 % of it changed instead of PostgreSQL's default 20 %, so leasing never walks through
-- many dead index entries. (This needs autovacuum on: claimd warns at start when it is off.)
ALTER TABLE deliveries SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.01
);
