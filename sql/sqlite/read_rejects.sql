-- The rejected values recorded for an object. Binds: ?1 object.
select object, id, property, raw_value, reason
from _hsync_rejects
where object = ?1
order by id, property, raw_value
