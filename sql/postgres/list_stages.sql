-- hsync's staging tables (`stage_<table>_<hex>`) in the state schema.
-- $1 state schema.
select tablename::text
from pg_catalog.pg_tables
where schemaname = $1
  and tablename like 'stage\_%'
order by tablename
