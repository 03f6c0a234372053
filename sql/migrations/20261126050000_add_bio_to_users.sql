-- migrate:up
-- A short text users write about themselves, shown on their profile.
ALTER TABLE public.users ADD COLUMN bio text;

-- migrate:down
ALTER TABLE public.users DROP COLUMN bio;
