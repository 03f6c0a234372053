-- uuid-ossp for the embedded local server, in SQL: the same function names and results as
-- contrib's uuid-ossp 1.1 for versions 3 and 4, the nil uuid and the namespaces (RFC 4122).
-- Versions 1 and 1mc need the host's MAC address and a clock sequence, version 5 needs SHA-1
-- (only pgcrypto has it): those raise a clear error instead.

\echo Use "CREATE EXTENSION ""uuid-ossp""" to load this file. \quit

CREATE FUNCTION uuid_nil() RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$;

CREATE FUNCTION uuid_ns_dns() RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT '6ba7b810-9dad-11d1-80b4-00c04fd430c8'::uuid $$;

CREATE FUNCTION uuid_ns_url() RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT '6ba7b811-9dad-11d1-80b4-00c04fd430c8'::uuid $$;

CREATE FUNCTION uuid_ns_oid() RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT '6ba7b812-9dad-11d1-80b4-00c04fd430c8'::uuid $$;

CREATE FUNCTION uuid_ns_x500() RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT '6ba7b814-9dad-11d1-80b4-00c04fd430c8'::uuid $$;

CREATE FUNCTION uuid_generate_v4() RETURNS uuid
LANGUAGE sql VOLATILE STRICT PARALLEL SAFE
AS $$ SELECT pg_catalog.gen_random_uuid() $$;

-- md5 of the namespace's 16 bytes followed by the name's bytes (in the database's encoding, as
-- contrib's does), then the version (3) in the high nibble of byte 6 and the variant (binary 10)
-- in the two high bits of byte 8.
CREATE FUNCTION uuid_generate_v3(namespace uuid, name text) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
  SELECT pg_catalog.encode(
           pg_catalog.set_byte(
             pg_catalog.set_byte(digest, 6, (pg_catalog.get_byte(digest, 6) & 15) | 48),
             8, (pg_catalog.get_byte(digest, 8) & 63) | 128),
           'hex')::uuid
  FROM (SELECT pg_catalog.decode(pg_catalog.md5(pg_catalog.uuid_send(namespace) || pg_catalog.textsend(name)), 'hex') AS digest) AS hashed
$$;

CREATE FUNCTION uuid_generate_v1() RETURNS uuid
LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
AS $$
BEGIN
  RAISE EXCEPTION 'uuid_generate_v1() is not available in this server''s uuid-ossp (a SQL-only stand-in)'
    USING ERRCODE = 'feature_not_supported', HINT = 'Use uuid_generate_v4() or gen_random_uuid().';
END
$$;

CREATE FUNCTION uuid_generate_v1mc() RETURNS uuid
LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE
AS $$
BEGIN
  RAISE EXCEPTION 'uuid_generate_v1mc() is not available in this server''s uuid-ossp (a SQL-only stand-in)'
    USING ERRCODE = 'feature_not_supported', HINT = 'Use uuid_generate_v4() or gen_random_uuid().';
END
$$;

CREATE FUNCTION uuid_generate_v5(namespace uuid, name text) RETURNS uuid
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
BEGIN
  RAISE EXCEPTION 'uuid_generate_v5() is not available in this server''s uuid-ossp (a SQL-only stand-in: no SHA-1)'
    USING ERRCODE = 'feature_not_supported', HINT = 'Use uuid_generate_v3() (md5) or uuid_generate_v4().';
END
$$;
