{#- Generic tests the mart contracts compile to (orchestration/dbt_yaml.py). A test fails
    with the rows that break it. -#}

{% test accepted_range(model, column_name, min_value=none, max_value=none) %}
select {{ column_name }} from {{ model }}
where {{ column_name }} is not null and (false
    {%- if min_value is not none %} or {{ column_name }} < {{ min_value }}{% endif %}
    {%- if max_value is not none %} or {{ column_name }} > {{ max_value }}{% endif %})
{% endtest %}

{% test matches_pattern(model, column_name, pattern) %}
select {{ column_name }} from {{ model }}
where {{ column_name }} is not null
    and not regexp_full_match({{ column_name }}, {{ dbt.string_literal(dbt.escape_single_quotes(pattern)) }})
{% endtest %}

{% test unique_combination(model, columns) %}
select {{ columns | join(', ') }}, count(*) as copies from {{ model }}
group by {{ columns | join(', ') }} having count(*) > 1
{% endtest %}

{#- A contract's `type: sql` rule: its query counts violations in ${table}; it must return must_be. -#}
{% test contract_sql_rule(model, query, must_be=0) %}
select result from (select ({{ query | replace('${table}', model | string) }}) as result)
where result is distinct from {{ must_be }}
{% endtest %}
