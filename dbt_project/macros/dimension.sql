{#- A dimension kept current from the window: the rows seen in the window are folded into the
    stored rows of the same key (first/last seen widened, attributes from the latest sighting),
    so re-running a window or running windows out of order gives the same table. -#}
{% macro dimension(key, attributes, from_relation, seen_at, where='true') -%}
{%- set w = window() -%}
with seen as (
    select
        {{ key }},
        {% for a in attributes %}arg_max({{ a }}, {{ seen_at }}) filter (where {{ a }} is not null) as {{ a }},
        {% endfor %}min({{ seen_at }}) as first_seen_at,
        max({{ seen_at }}) as last_seen_at
    from {{ from_relation }}
    where {{ key }} is not null and ({{ where }}) and {{ in_window(w, ts_column=seen_at) }}
    group by {{ key }}
),

combined as (
    select * from seen
    {% if is_incremental() %}
    union all
    select {{ key }}, {% for a in attributes %}{{ a }}, {% endfor %}first_seen_at, last_seen_at
    from {{ this }} where {{ key }} in (select {{ key }} from seen)
    {% endif %}
)

select
    {{ key }},
    {% for a in attributes %}arg_max({{ a }}, last_seen_at) filter (where {{ a }} is not null) as {{ a }},
    {% endfor %}min(first_seen_at) as first_seen_at,
    max(last_seen_at) as last_seen_at
from combined
group by {{ key }}
{%- endmacro %}
