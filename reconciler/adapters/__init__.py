"""The adapters that talk to AWS: boto3 (STS, CloudFormation), PynamoDB (the desired store) and S3 (templates).

The only modules of the reconciler that import an AWS SDK; the engine never imports them, it is given them."""
