-- Omny download events, one row per deduplicated download. The raw IP never leaves this model:
-- it only feeds `listener_key`, a hash of IP and user agent.
{{ stg_omny__downloads_sql(lake_events('omny')) }}
