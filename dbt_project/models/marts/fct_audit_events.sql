{#- One row per Airkit audit event: who (actor) did what (action) to what (target), when, with
    what outcome, in which app. Rows mirror the events layer; the window is replaced whole. -#}
{%- set w = window() -%}
{{ config(
    incremental_strategy='replace',
    replace_where="occurred_at >= {lo} and occurred_at < {hi}",
) }}

select
    event_id as audit_event_id,
    event_ts as occurred_at,
    coalesce(actor_id, 'unknown') as actor_id,
    coalesce(actor_type, 'unknown') as actor_type,
    coalesce(action, event_name) as action,
    event_name,
    target_type,
    target_id,
    coalesce(outcome, 'Unknown') as outcome,
    error_code,
    error_message,
    app_id,
    app_name,
    source_file,
    arrival_hour
from {{ staging('stg_airkit__events', w) }}
where category = 'Audit' and {{ in_window(w) }}
