{#- The staging models' SQL, each a macro over a relation of its source's events layer. A staging
    view (models/staging/) is its macro over every hour of the lake; a mart reads
    `staging('stg_<source>__<what>', w)`, the same SQL over the files of its window's hours only:
    binding a read of every hour (by name, `union_by_name`: a file written before a column was
    added lacks it) reads the footer of every file, so a mart's cost would grow with the history. -#}

{% macro staging(model, w) -%}
    {%- do ref(model) -%}  {#- the lineage (Dagster's asset graph) and dbt's order -#}
    ({{ context[model ~ '_sql'](lake_events(model[4:].split('__')[0], w)) }})
{%- endmacro %}

{#- Airkit session, audit and platform events. `actor_email` (restricted) is left out. -#}
{% macro stg_airkit__events_sql(events) -%}
    select
        event_id,
        event_ts,
        event_hour,
        event_name,
        category,
        app_id,
        app_name,
        journey_id,
        journey_name,
        session_id,
        action_runs,
        coalesce(device_class, 'Unknown') as device_class,
        user_agent_os,
        page_name,
        csat_score,
        time_on_page_seconds,
        actor_id,
        actor_type,
        action,
        target_type,
        target_id,
        outcome,
        level,
        error_code,
        error_message,
        duration_ms,
        source_file,
        arrival_hour
    from {{ events }}
{%- endmacro %}

{#- Altis page analytics. `endpoint_id` (one device + browser) is the user sessions are cut by. -#}
{% macro stg_altis__events_sql(events) -%}
    select
        event_id,
        event_ts,
        event_hour,
        event_name,
        endpoint_id,
        endpoint_user_id,
        coalesce(endpoint_device_type[1], 'Unknown') as device_class,
        coalesce(endpoint_platform, 'Unknown') as platform,
        attributes_blog_id as blog_id,
        attributes_url as url,
        metrics_elapsed_ms,
        endpoint_country as country,
        arrival_hour
    from {{ events }}
{%- endmacro %}

{#- Atomic analytics events. `is_test`: cards sent from the Workbench test tools
    (triggerEventSource = test) are flagged, never mixed with live ones. -#}
{% macro stg_atomic__events_sql(events) -%}
    select
        event_id,
        event_ts,
        event_hour,
        event_name,
        analytics_event,
        end_user_id,
        coalesce(sdk_context_platform, 'Server') as platform,
        case
            when sdk_context_platform in ('iOS', 'Android') then 'Mobile'
            when sdk_context_platform = 'Web' then 'Desktop'
            else 'Unknown'
        end as device_class,
        sdk_context_platform is not null as is_sdk_event,
        stream_context_stream_id as stream_id,
        card_context_card_instance_id as card_instance_id,
        card_context_card_template_id as card_template_id,
        card_context_card_template_name as card_template_name,
        card_context_card_template_version as card_template_version,
        coalesce(platform_context_trigger_event_source = 'test', false) as is_test,
        analytics_event in ('card-error', 'request-failed', 'action-flow-step-failed', 'action-flow-failed') as is_error,
        arrival_hour
    from {{ events }}
{%- endmacro %}

{#- Omny download events, one row per deduplicated download. The raw IP never leaves this model: it
    only feeds `listener_key`, a hash of IP and user agent. -#}
{% macro stg_omny__downloads_sql(events) -%}
    select
        event_id as download_id,
        event_ts as downloaded_at,
        event_hour,
        program_id,
        program_name,
        network_id,
        network_name,
        clip_id,
        clip_title,
        clip_audio_duration_seconds,
        playlist_id,
        playlist_title,
        coalesce(download_device_type, 'Unknown') as device_type,
        download_os_family as os_family,
        download_user_agent_family as user_agent_family,
        download_source,
        md5(coalesce(download_ip_address, '') || '|' || coalesce(download_raw_user_agent, '')) as listener_key,
        geo_country_iso_code as country_code,
        geo_country as country,
        geo_state as region,
        geo_city as city,
        arrival_hour
    from {{ events }}
{%- endmacro %}

{#- Track Events API events. The user is `properties.user_id` when the client sent one; device
    class and platform come from the user agent. -#}
{% macro stg_track__events_sql(events) -%}
    select
        event_id,
        event_ts,
        event_hour,
        event_name,
        category,
        priority,
        session_id,
        properties ->> 'user_id' as user_id,
        client_id,
        page_url,
        case
            when user_agent is null then 'Unknown'
            when regexp_matches(user_agent, 'iPad|Tablet') then 'Tablet'
            when regexp_matches(user_agent, 'Mobile|iPhone|Android') then 'Mobile'
            else 'Desktop'
        end as device_class,
        case
            when user_agent is null then 'Unknown'
            when regexp_matches(user_agent, 'iPhone|iPad|iOS') then 'iOS'
            when regexp_matches(user_agent, 'Android') then 'Android'
            else 'Web'
        end as platform,
        category = 'error' or regexp_matches(event_name, '(error|failed)$') as is_error,
        arrival_hour
    from {{ events }}
{%- endmacro %}
