{#- The Atomic card funnel: one row per card instance and end user, with the first time it
    reached each stage (published → displayed → completed / dismissed / snoozed). Counting rows
    per stage counts each card once. New events are folded into the stored row (earliest time
    per stage), so the result does not depend on the order windows ran in. -#}
{%- set w = window() -%}
{{ config(incremental_strategy='delete+insert', unique_key='card_key') }}

with window_cards as (
    select
        md5(card_instance_id || '|' || coalesce(end_user_id, '')) as card_key,
        card_instance_id,
        end_user_id,
        arg_max(card_template_id, event_ts) as card_template_id,
        arg_max(card_template_name, event_ts) as card_template_name,
        bool_or(is_test) as is_test,
        min(event_ts) filter (where analytics_event = 'card-published') as published_at,
        min(event_ts) filter (where analytics_event = 'card-displayed') as displayed_at,
        min(event_ts) filter (where analytics_event = 'card-completed') as completed_at,
        min(event_ts) filter (where analytics_event = 'card-dismissed') as dismissed_at,
        min(event_ts) filter (where analytics_event = 'card-snoozed') as snoozed_at,
        max(event_ts) as last_event_at
    from {{ ref('stg_atomic__events') }}
    where card_instance_id is not null and {{ in_window(w) }}
    group by all
),

combined as (
    select * from window_cards
    {% if is_incremental() %}
    union all
    select card_key, card_instance_id, end_user_id, card_template_id, card_template_name, is_test,
           published_at, displayed_at, completed_at, dismissed_at, snoozed_at, last_event_at
    from {{ this }} where card_key in (select card_key from window_cards)
    {% endif %}
)

select
    card_key,
    any_value(card_instance_id) as card_instance_id,
    any_value(end_user_id) as end_user_id,
    arg_max(card_template_id, last_event_at) as card_template_id,
    arg_max(card_template_name, last_event_at) as card_template_name,
    bool_or(is_test) as is_test,
    min(published_at) as published_at,
    min(displayed_at) as displayed_at,
    min(completed_at) as completed_at,
    min(dismissed_at) as dismissed_at,
    min(snoozed_at) as snoozed_at,
    max(last_event_at) as last_event_at
from combined
group by card_key
