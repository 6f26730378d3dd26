//! SNS: a release's notifications, one `Publish` a message.

use async_trait::async_trait;

use super::errors::err;
use super::*;

#[async_trait]
impl super::super::Notifier for AwsCloud {
    async fn publish(&self, topic_arn: &str, subject: &str, message: &str) -> CloudResult<()> {
        self.sns
            .publish()
            .topic_arn(topic_arn)
            .subject(subject)
            .message(message)
            .send()
            .await
            .map(|_| ())
            .map_err(err(format!("publishing to {topic_arn}")))
    }
}
