-- Its SQL, and what it keeps out, in macros/staging.sql.
{{ stg_track__events_sql(lake_events('track')) }}
