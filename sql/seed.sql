-- Seed data for a fresh local database. Loaded in one transaction by `inv db.seed`.
-- Cognito ids starting with MOCK are placeholders: the real user's sign-up (the post-confirmation
-- Lambda) or `inv cognito.sync` replaces them.

INSERT INTO public.users (display_name, handle, email, cognito_user_id)
VALUES
  ('Andrew Brown', 'andrewbrown', 'andrew@exampro.co', 'MOCK-andrewbrown'),
  ('Andrew Bayko', 'bayko',       'bayko@exampro.co',  'MOCK-bayko');

INSERT INTO public.activities (user_uuid, message, expires_at)
VALUES (
  (SELECT uuid FROM public.users WHERE handle = 'andrewbrown'),
  'This was imported as seed data!',
  now() + interval '10 days'
);
