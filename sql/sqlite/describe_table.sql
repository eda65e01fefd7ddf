-- The columns of a table, in order, with their declared types. Binds: ?1 table name.
select name, type
from pragma_table_info(?1)
order by cid
