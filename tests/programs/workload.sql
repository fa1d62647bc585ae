-- sqlite3 workload for the LD_PRELOAD tests (deterministic output)
PRAGMA journal_mode=WAL;
PRAGMA cache_size=-20000;
PRAGMA synchronous=OFF;
CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT NOT NULL, v INTEGER, payload BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 50000)
INSERT INTO t SELECT x, printf('key%08d', (x * 7919) % 20000), (x * 31337) % 1000, zeroblob(x % 300) FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_v ON t(v, k);
SELECT count(*), sum(v), count(DISTINCT k), sum(length(payload)) FROM t;
SELECT v, count(*) FROM t GROUP BY v ORDER BY count(*) DESC, v LIMIT 5;
SELECT group_concat(k, ' ') FROM (SELECT k FROM t WHERE v = 7 ORDER BY k LIMIT 10);
SELECT a.v, count(*) FROM t a JOIN t b ON a.k = b.k AND a.id < b.id GROUP BY a.v ORDER BY a.v LIMIT 3;
CREATE TABLE s AS SELECT k, upper(k) || '-' || v AS label FROM t WHERE id % 7 = 0;
SELECT count(*), max(label), min(label) FROM s;
UPDATE t SET v = v + 1, payload = zeroblob(id % 500) WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), sum(v), sum(length(payload)) FROM t;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)
SELECT sum(length(printf('%.*c', x % 200, 'z'))) FROM c;
SELECT json_group_array(k) IS NOT NULL, length(json_group_array(k)) FROM (SELECT k FROM t ORDER BY k LIMIT 1000);
PRAGMA wal_checkpoint(TRUNCATE);
PRAGMA journal_mode=DELETE;
VACUUM;
PRAGMA integrity_check;
SELECT count(*) FROM t WHERE k LIKE 'key0001%';
