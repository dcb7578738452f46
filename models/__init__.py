"""What is stored and what is valid: schemas, value objects and the DynamoDB tables."""
