-- The indexes and triggers created on a table by hand (SQLite's automatic indexes have no SQL),
-- indexes first: a widen rebuild re-creates them. Binds: ?1 table name.
select sql
from sqlite_schema
where type in ('index', 'trigger')
  and tbl_name = ?1
  and sql is not null
order by type, name
