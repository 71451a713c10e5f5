//! ONVIF events of a wrapped camera (ONVIF Core, event service, PullPoint): what an answer
//! to `PullMessages` says, read as alarm triggers (H.626.4 8.8 step 5, source `onvif`).
//!
//! Each `NotificationMessage` has a `Topic` (e.g. `tns1:RuleEngine/CellMotionDetector/Motion`,
//! `tns1:Device/Trigger/DigitalInput`) and a `Message` whose `Source` and `Data` carry
//! `SimpleItem`s; the state is the first boolean `Data` item (`IsMotion`, `LogicalState`,
//! `State`, ...).

use quick_xml::events::Event;

use crate::Error;

/// Most notifications read from one answer.
pub const MAX_EVENTS: usize = 256;
/// Largest answer read, bytes.
pub const MAX_ANSWER: usize = 1 << 20;

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnvifEvent {
    /// The topic, as the camera wrote it (at most 200 bytes).
    pub topic: String,
    /// The `Source` items, `name=value` joined by `,` (e.g. `VideoSourceToken=vs0`).
    pub source: String,
    /// Whether the state is active (`true` or `1`); none when no boolean item is present.
    pub active: Option<bool>,
}

impl OnvifEvent {
    /// The alarm detail: topic and source, cut to fit the alarm's 256 bytes.
    pub fn detail(&self) -> String {
        let mut d = if self.source.is_empty() {
            self.topic.clone()
        } else {
            format!("{} {}", self.topic, self.source)
        };
        truncate(&mut d, crate::MAX_DETAIL);
        d
    }
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

fn boolean(v: &str) -> Option<bool> {
    match v.trim() {
        "true" | "1" | "TRUE" | "True" => Some(true),
        "false" | "0" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    None,
    Topic,
    Source,
    Data,
}

fn xml_error(_: impl std::fmt::Display) -> Error {
    Error::invalid("xml", "not well-formed")
}

/// Reads the notifications of a `PullMessagesResponse` (or any answer holding
/// `NotificationMessage`s), in document order.
pub fn parse_pull_messages(xml: &str) -> Result<Vec<OnvifEvent>, Error> {
    if xml.len() > MAX_ANSWER {
        return Err(Error::invalid("xml", "answer too large"));
    }
    let mut r = quick_xml::Reader::from_str(xml);
    let mut out: Vec<OnvifEvent> = Vec::new();
    let mut current: Option<OnvifEvent> = None;
    let mut part = Part::None;
    loop {
        let ev = r.read_event().map_err(xml_error)?;
        match &ev {
            Event::Start(e) | Event::Empty(e) => {
                let name = e.local_name();
                match name.as_ref() {
                    b"NotificationMessage" => {
                        if let Some(done) = current.take() {
                            out.push(done);
                        }
                        if out.len() >= MAX_EVENTS {
                            return Err(Error::invalid("xml", "too many notifications"));
                        }
                        current = Some(OnvifEvent {
                            topic: String::new(),
                            source: String::new(),
                            active: None,
                        });
                    }
                    b"Topic" if matches!(ev, Event::Start(_)) => part = Part::Topic,
                    b"Source" => part = Part::Source,
                    b"Data" => part = Part::Data,
                    b"SimpleItem" => {
                        if let Some(c) = current.as_mut() {
                            simple_item(c, part, e)?;
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) if part == Part::Topic => {
                if let Some(c) = current.as_mut() {
                    let text = t.decode().map_err(xml_error)?;
                    c.topic.push_str(text.trim());
                    truncate(&mut c.topic, 200);
                }
            }
            Event::End(e) => {
                if matches!(e.local_name().as_ref(), b"Topic" | b"Source" | b"Data") {
                    part = Part::None;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out.extend(current);
    Ok(out)
}

fn simple_item(
    c: &mut OnvifEvent,
    part: Part,
    e: &quick_xml::events::BytesStart<'_>,
) -> Result<(), Error> {
    let (mut name, mut value) = (String::new(), String::new());
    for a in e.attributes() {
        let a = a.map_err(xml_error)?;
        let v = a.unescape_value().map_err(xml_error)?;
        match a.key.local_name().as_ref() {
            b"Name" => name = v.into_owned(),
            b"Value" => value = v.into_owned(),
            _ => {}
        }
    }
    match part {
        Part::Source if c.source.len() < 200 => {
            if !c.source.is_empty() {
                c.source.push(',');
            }
            c.source.push_str(&format!("{name}={value}"));
            truncate(&mut c.source, 200);
        }
        Part::Data if c.active.is_none() => c.active = boolean(&value),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const PULL: &str = r#"<?xml version="1.0"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tev="http://www.onvif.org/ver10/events/wsdl" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tns1="http://www.onvif.org/ver10/topics">
<s:Body><tev:PullMessagesResponse>
<tev:CurrentTime>2026-12-07T02:00:00Z</tev:CurrentTime>
<wsnt:NotificationMessage>
  <wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic>
  <wsnt:Message><tt:Message UtcTime="2026-12-07T02:00:00Z" PropertyOperation="Changed">
    <tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="vsc0"/><tt:SimpleItem Name="Rule" Value="MyMotion"/></tt:Source>
    <tt:Data><tt:SimpleItem Name="IsMotion" Value="true"/></tt:Data>
  </tt:Message></wsnt:Message>
</wsnt:NotificationMessage>
<wsnt:NotificationMessage>
  <wsnt:Topic>tns1:Device/Trigger/DigitalInput</wsnt:Topic>
  <wsnt:Message><tt:Message><tt:Source><tt:SimpleItem Name="InputToken" Value="DI&amp;1"/></tt:Source>
  <tt:Data><tt:SimpleItem Name="LogicalState" Value="false"/></tt:Data></tt:Message></wsnt:Message>
</wsnt:NotificationMessage>
</tev:PullMessagesResponse></s:Body></s:Envelope>"#;

    #[test]
    fn h626_8_8_onvif_pull_messages_are_read_as_events() {
        let events = parse_pull_messages(PULL).unwrap();
        assert_eq!(
            events,
            [
                OnvifEvent {
                    topic: "tns1:RuleEngine/CellMotionDetector/Motion".into(),
                    source: "VideoSourceConfigurationToken=vsc0,Rule=MyMotion".into(),
                    active: Some(true),
                },
                OnvifEvent {
                    topic: "tns1:Device/Trigger/DigitalInput".into(),
                    source: "InputToken=DI&1".into(),
                    active: Some(false),
                },
            ]
        );
        assert_eq!(
            events[1].detail(),
            "tns1:Device/Trigger/DigitalInput InputToken=DI&1"
        );
        assert!(parse_pull_messages("<a><b></a>").is_err());
        assert_eq!(parse_pull_messages("<empty/>").unwrap(), []);
    }

    proptest! {
        #[test]
        fn h626_8_8_onvif_parser_never_panics_and_bounds_text(s in ".{0,400}", topic in "[a-zA-Z:/]{0,300}") {
            let _ = parse_pull_messages(&s);
            let xml = format!("<NotificationMessage><Topic>{topic}</Topic><Data><SimpleItem Name=\"State\" Value=\"1\"/></Data></NotificationMessage>");
            let ev = parse_pull_messages(&xml).unwrap();
            prop_assert_eq!(ev.len(), 1);
            prop_assert!(ev[0].topic.len() <= 200 && ev[0].detail().len() <= 256);
            prop_assert_eq!(ev[0].active, Some(true));
        }
    }
}
