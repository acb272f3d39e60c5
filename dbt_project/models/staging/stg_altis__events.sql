-- Its SQL, and what it keeps out, in macros/staging.sql.
{{ stg_altis__events_sql(lake_events('altis')) }}
