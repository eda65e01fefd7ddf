-- The session holding the advisory lock named $1 in this database, for the message of a
-- process refused it. A bigint advisory key is split into classid (high 32 bits) and objid
-- (low 32 bits), with objsubid 1.
select a.pid, a.application_name, host(a.client_addr), a.backend_start
from pg_catalog.pg_locks l
join pg_catalog.pg_stat_activity a on a.pid = l.pid
where l.locktype = 'advisory'
  and l.granted
  and l.objsubid = 1
  and l.database = (select oid from pg_catalog.pg_database where datname = current_database())
  and l.classid::bigint = (hashtextextended($1, 0) >> 32) & 4294967295
  and l.objid::bigint = hashtextextended($1, 0) & 4294967295
limit 1
