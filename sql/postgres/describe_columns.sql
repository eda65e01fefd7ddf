-- The columns of one table, in table order, with their types as information_schema names
-- them. No row: the table does not exist (or hsync's user cannot see it).
-- $1 schema, $2 table.
select column_name::text, data_type::text
from information_schema.columns
where table_schema = $1
  and table_name = $2
order by ordinal_position
