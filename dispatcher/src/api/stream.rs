//! `GET /v1/stream`: Server-Sent Events for agents. Each timeline event is one SSE event
//! (`id` = the event's global id, `event` = its kind, `data` = the event as JSON). A client
//! reconnecting with `Last-Event-ID` (or `?last_event_id=`) first gets what it missed,
//! read back from the log, then the live feed; a client too slow for the live feed is
//! caught up from the log the same way, never silently skipped.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use domain::Event;
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::AgentAuth;
use crate::api::state::AppState;
use crate::stream::EventTail;

/// Connected stream subscribers.
pub const STREAM_SUBSCRIBERS: &str = "rescue_stream_subscribers";

/// Most events replayed from the log per read.
const REPLAY_BATCH: u32 = 500;

/// Where to resume.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this event id (same as the `Last-Event-ID` header, which wins).
    pub last_event_id: Option<i64>,
}

/// The agents' live feed of case events (alerts, status changes, offers …) as
/// Server-Sent Events, with replay after `Last-Event-ID`.
#[utoipa::path(get, path = "/v1/stream", tag = "dispatch",
    security(("bearer" = [])),
    params(StreamQuery, ("Last-Event-ID" = Option<String>, Header, description = "resume after this event id")),
    responses(
        (status = 200, description = "text/event-stream of case events", content_type = "text/event-stream", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn stream(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let from_header = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<i64>().ok())
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be an event id"))?,
        ),
        None => None,
    };
    let tail = state.events.clone();
    // Subscribe before reading the watermark, so nothing falls between replay and live.
    let live = tail.subscribe();
    let resume_after = from_header
        .or(query.last_event_id)
        .unwrap_or_else(|| tail.watermark());
    tracing::info!(user_id = %agent.id, resume_after, "agent stream opened");
    let feed = Feed {
        tail,
        live,
        last_sent: resume_after,
        backlog: VecDeque::new(),
        catching_up: true,
        _subscribed: Subscribed::new(),
    };
    let events = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(to_sse(&event)), feed))
    });
    Ok(Sse::new(events).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    ))
}

fn to_sse(event: &Event) -> SseEvent {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
    SseEvent::default()
        .id(event.id.to_string())
        .event(event.kind.as_str())
        .data(data)
}

/// Counts the subscriber while the stream lives.
struct Subscribed;

impl Subscribed {
    fn new() -> Subscribed {
        metrics::gauge!(STREAM_SUBSCRIBERS).increment(1.0);
        Subscribed
    }
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        metrics::gauge!(STREAM_SUBSCRIBERS).decrement(1.0);
    }
}

struct Feed {
    tail: Arc<EventTail>,
    live: broadcast::Receiver<Arc<Event>>,
    last_sent: i64,
    backlog: VecDeque<Event>,
    catching_up: bool,
    _subscribed: Subscribed,
}

impl Feed {
    /// The next event to send, in id order, without gaps or repeats.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                self.last_sent = event.id;
                return Some(event);
            }
            if self.catching_up {
                // Read the log up to what the tail has broadcast; the rest comes live.
                let watermark = self.tail.watermark();
                if self.last_sent >= watermark {
                    self.catching_up = false;
                    continue;
                }
                match self
                    .tail
                    .store()
                    .events_after(self.last_sent, REPLAY_BATCH)
                    .await
                {
                    Ok(events) => {
                        let fresh: Vec<Event> =
                            events.into_iter().filter(|e| e.id <= watermark).collect();
                        if fresh.is_empty() {
                            self.catching_up = false;
                        }
                        self.backlog.extend(fresh);
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "replaying events for a stream failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                continue;
            }
            match self.live.recv().await {
                Ok(event) if event.id > self.last_sent => {
                    self.last_sent = event.id;
                    return Some((*event).clone());
                }
                Ok(_) => {}
                // Too slow for the live feed: catch up from the log.
                Err(broadcast::error::RecvError::Lagged(_)) => self.catching_up = true,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
