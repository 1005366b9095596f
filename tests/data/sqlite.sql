CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
INSERT INTO t SELECT x, x % 97, printf('name-%06d-%s', x, hex(x * 2654435761 % 1000003)), (x * 7919 % 10007) / 3.0 FROM c;
CREATE INDEX t_grp ON t(grp);
CREATE INDEX t_name ON t(name);
CREATE TABLE g(grp INTEGER PRIMARY KEY, label TEXT);
WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < 96)
INSERT INTO g SELECT x, 'group-' || x FROM c;
SELECT count(*), sum(val), min(name), max(name) FROM t;
SELECT g.label, count(*), round(avg(t.val), 3) FROM t JOIN g ON t.grp = g.grp GROUP BY g.label ORDER BY g.label LIMIT 10;
SELECT name FROM t WHERE name LIKE 'name-0999%' ORDER BY name;
