-- Create an activity for the user with this handle and return it, in one statement.
-- created_at and expires_at come from the same now(), so expires_at - created_at is the ttl exactly.
-- The ttl is in seconds: an interval of days would follow the session's daylight-saving shifts.
-- An unknown handle inserts nothing and returns no row.
-- The JSON is built here: a data-modifying WITH must be at the top level, so the generic
-- object wrapper cannot enclose this statement.
WITH inserted AS (
  INSERT INTO public.activities (user_uuid, message, created_at, expires_at)
  SELECT users.uuid, %(message)s, now(), now() + make_interval(secs => %(ttl_seconds)s)
  FROM public.users
  WHERE users.handle = %(handle)s
  RETURNING uuid, user_uuid, message, created_at, expires_at
)
SELECT row_to_json(object_row)
FROM (
  SELECT
    inserted.uuid,
    users.display_name,
    users.handle,
    inserted.message,
    inserted.created_at,
    inserted.expires_at
  FROM inserted
  INNER JOIN public.users ON users.uuid = inserted.user_uuid
) object_row
