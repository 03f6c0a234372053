-- How many activities the home feed could show: every row home.sql reads, without a limit.
SELECT count(*) FROM public.activities
