-- Run once by the postgres image's entrypoint on an empty data volume
-- (docker-compose.yml mounts it into /docker-entrypoint-initdb.d), as the
-- POSTGRES_USER superuser. Each service owns one database; their tables are
-- created by the services themselves on startup.
CREATE DATABASE shop_a;
CREATE DATABASE shop_b;
