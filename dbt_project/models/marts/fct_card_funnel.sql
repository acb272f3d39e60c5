{#- The Atomic card funnel: one row per card instance and end user, with the first time it
    reached each stage (published → displayed → completed / dismissed / snoozed). Counting rows
    per stage counts each card once. An hourly fold (macros/dimension.sql): the row of every
    card with events in the window, or with events stored for the window's hours, is rebuilt
    from the card's hourly partials, so it equals the aggregate of all the card's events however
    they moved, vanished or arrived, and whatever order the windows ran in. -#}
{%- set stages = [['published_at', 'card-published'], ['displayed_at', 'card-displayed'],
                  ['completed_at', 'card-completed'], ['dismissed_at', 'card-dismissed'],
                  ['snoozed_at', 'card-snoozed']] -%}
{%- set partials = [
    ['card_instance_id', 'any_value(card_instance_id)'],
    ['end_user_id', 'any_value(end_user_id)'],
    ['card_template_id', 'arg_max(card_template_id, event_ts) filter (where card_template_id is not null)'],
    ['card_template_name', 'arg_max(card_template_name, event_ts) filter (where card_template_name is not null)'],
    ['is_test', 'bool_or(is_test)'],
] -%}
{%- set finals = [
    ['card_instance_id', 'any_value(card_instance_id)'],
    ['end_user_id', 'any_value(end_user_id)'],
    ['card_template_id', 'arg_max(card_template_id, last_event_at) filter (where card_template_id is not null)'],
    ['card_template_name', 'arg_max(card_template_name, last_event_at) filter (where card_template_name is not null)'],
    ['is_test', 'bool_or(is_test)'],
] -%}
{%- for column, event in stages -%}
    {%- do partials.append([column, "min(event_ts) filter (where analytics_event = '" ~ event ~ "')"]) -%}
    {%- do finals.append([column, "min(" ~ column ~ ")"]) -%}
{%- endfor -%}
{%- do partials.append(['last_event_at', 'max(event_ts)']) -%}
{%- do finals.append(['last_event_at', 'max(last_event_at)']) -%}
{{ hourly_fold('card_key', 'stg_atomic__events', 'event_ts', partials, finals,
               key_sql="md5(card_instance_id || '|' || coalesce(end_user_id, ''))",
               where='card_instance_id is not null') }}
