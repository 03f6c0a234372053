-- Cruddur's schema. Loaded in one transaction by `inv db.schema-load` (and `inv db.setup`).
-- gen_random_uuid() is built in since PostgreSQL 13: no uuid-ossp extension needed.

DROP TABLE IF EXISTS public.activities;
DROP TABLE IF EXISTS public.users;
-- The migrations' record goes with the tables they changed: after this file none is applied.
DROP TABLE IF EXISTS public.schema_migrations;

CREATE TABLE public.users (
  uuid            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  display_name    text        NOT NULL,
  handle          text        NOT NULL UNIQUE,
  email           text        NOT NULL,
  cognito_user_id text        NOT NULL UNIQUE,
  created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.activities (
  uuid                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
  user_uuid              uuid        NOT NULL REFERENCES public.users (uuid) ON DELETE CASCADE,
  message                text        NOT NULL,
  replies_count          integer     NOT NULL DEFAULT 0,
  reposts_count          integer     NOT NULL DEFAULT 0,
  likes_count            integer     NOT NULL DEFAULT 0,
  reply_to_activity_uuid uuid        REFERENCES public.activities (uuid) ON DELETE SET NULL,
  expires_at             timestamptz,
  created_at             timestamptz NOT NULL DEFAULT now()
);

-- The home feed reads the newest activities first; uuid breaks ties as in its ORDER BY, so the
-- index alone gives the order and a LIMIT stops early without a sort.
CREATE INDEX activities_created_at_idx ON public.activities (created_at DESC, uuid DESC);
CREATE INDEX activities_user_uuid_idx ON public.activities (user_uuid);
