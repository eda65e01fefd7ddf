-- Staging tables that exist now (left by a crash between stage and merge, or in flight).
select name
from sqlite_schema
where type = 'table'
  and name like '\_hsync\_stage\_%' escape '\'
order by name
