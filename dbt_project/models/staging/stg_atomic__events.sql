-- Atomic analytics events. `is_test`: cards sent from the Workbench test tools
-- (triggerEventSource = test) are flagged, never mixed with live ones.
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
from {{ lake_events('atomic') }}
